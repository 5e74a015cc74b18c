# local-path-provisioner image for the CI cluster: the local Debian base plus our build. The same
# image is the provisioner's helper pod image (its setup/teardown scripts need sh, mkdir, chmod, rm).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY local-path-provisioner /usr/local/bin/local-path-provisioner
