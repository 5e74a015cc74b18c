/* tls: the handshake failure results (protocol.toml [tls.failure_reason]), the descriptions,
 * a certificate that cannot be loaded. */
#include "tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "unit.h"

void test_tls(struct unit *u)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
#define SSL_ERR(r) ERR_PACK(ERR_LIB_SSL, 0, (r))
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_WRONG_VERSION_NUMBER)) == PTS_TLS_NOT_TLS);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_HTTP_REQUEST)) == PTS_TLS_NOT_TLS);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_UNSUPPORTED_PROTOCOL)) == PTS_TLS_NOT_TLS);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_TLSV1_ALERT_UNKNOWN_CA)) == PTS_TLS_CERTIFICATE);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE))
                 == PTS_TLS_CERTIFICATE);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE))
                 == PTS_TLS_CERTIFICATE);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_CERTIFICATE_VERIFY_FAILED)) == PTS_TLS_CERTIFICATE);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED))
                 == PTS_TLS_CERTIFICATE);
    CHECK(u, tls_failure_result(SSL_ERR(SSL_R_NO_SHARED_CIPHER)) == PTS_TLS_PROTOCOL);
    CHECK(u, tls_failure_result(0) == PTS_TLS_PROTOCOL);

    CHECK_STR(u, tls_result_name(PTS_TLS_OK), "ok");
    CHECK_STR(u, tls_result_name(PTS_TLS_NOT_TLS), "not-tls");
    CHECK_STR(u, tls_result_name(PTS_TLS_TIMEOUT), "timeout");
    CHECK_STR(u, tls_result_name(PTS_TLS_PROTOCOL), "protocol");

    char buf[256];
    tls_describe(buf, sizeof buf, SSL_ERR(SSL_R_WRONG_VERSION_NUMBER), 0);
    CHECK_STR(u, buf, "WRONG_VERSION_NUMBER: [SSL: WRONG_VERSION_NUMBER] wrong version number");
    tls_describe(buf, sizeof buf, SSL_ERR(SSL_R_CERTIFICATE_VERIFY_FAILED),
                 X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    CHECK_STR(u, buf, "CERTIFICATE_VERIFY_FAILED: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                      "verify failed: unable to get local issuer certificate");

    /* A certificate file that does not exist: the reason, as the Python server words it. */
    struct pts_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.tls_cert_file, sizeof cfg.tls_cert_file, "/nonexistent/server.crt");
    snprintf(cfg.tls_key_file, sizeof cfg.tls_key_file, "/nonexistent/server.key");
    struct tls t;
    char err[512] = "";
    CHECK(u, tls_init(&t, &cfg, err, sizeof err) == -1);
    CHECK_STR(u, err, "No such file or directory");
    CHECK(u, tls_check(&t) == -1); /* still missing: unchanged */
    tls_destroy(&t);
    CHECK(u, ERR_peek_error() == 0); /* the error queue is left empty */
#undef SSL_ERR
}
