# shellcheck shell=bash
# Copy of sql/03-app-user.sh, made by `make render` for the Helm chart. Do not edit.
# Creates the servers' least-privilege database account from app-user.sql.in (beside this file).
#
# Sourced, not executed, by the database image's entrypoint from /docker-entrypoint-initdb.d on
# the first start (official mysql and mariadb images, and the CI image): it uses the
# entrypoint's docker_process_sql. Keep it non-executable: an executable *.sh runs in a child
# shell without that function. The local dev tools load only *.sql files and ignore this one.
#
#   APP_DB_USER                account name (default points_app)
#   APP_DB_PASSWORD            its password (or APP_DB_PASSWORD_FILE: a file holding it)
#
# Both are escaped for a single-quoted SQL string before they are put into the template; the
# password is never printed.
_pm_user=${APP_DB_USER:-points_app}
_pm_pass=${APP_DB_PASSWORD:-}
if [ -z "$_pm_pass" ] && [ -n "${APP_DB_PASSWORD_FILE:-}" ]; then
    _pm_pass=$(<"$APP_DB_PASSWORD_FILE")
fi
if [ -z "$_pm_pass" ]; then
    echo >&2 "03-app-user.sh: set APP_DB_PASSWORD (or APP_DB_PASSWORD_FILE) for the database container"
    exit 1
fi
_pm_bs=\\
_pm_q="'"
_pm_user=${_pm_user//"$_pm_bs"/"$_pm_bs$_pm_bs"}
_pm_user=${_pm_user//"$_pm_q"/"$_pm_q$_pm_q"}
_pm_pass=${_pm_pass//"$_pm_bs"/"$_pm_bs$_pm_bs"}
_pm_pass=${_pm_pass//"$_pm_q"/"$_pm_q$_pm_q"}
_pm_sql=$(<"$(dirname "${BASH_SOURCE[0]}")/app-user.sql.in")
_pm_sql=${_pm_sql//@APP_USER@/"$_pm_user"}
_pm_sql=${_pm_sql//@APP_PASSWORD@/"$_pm_pass"}
echo "03-app-user.sh: creating account '${APP_DB_USER:-points_app}' (SELECT, INSERT, UPDATE on project_db.users)"
printf '%s\n' "$_pm_sql" | docker_process_sql
unset _pm_user _pm_pass _pm_bs _pm_q _pm_sql
