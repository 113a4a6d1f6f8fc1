# mindroom-provisioning.Dockerfile -- the mindroom-provisioning image:
# pair codes, client credentials, namespaces, instance provisioning.
# Built by docker/build.sh after the shared stages (build.Dockerfile, runtime.Dockerfile),
# with docker/ as the context: it copies nothing from there.
ARG VERSION=0.1.0
FROM mindroom-build:${VERSION} AS build
RUN cmake --build /build --target mindroom-provisioning -j"$(nproc)"

FROM mindroom-runtime:${VERSION}
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libhiredis0.14 libjansson4 librdkafka1 libsqlite3-0 libssl3 libyaml-0-2 \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY --from=build /build/services/provisioning/mindroom-provisioning /usr/local/bin/mindroom-provisioning
ENTRYPOINT ["mindroom-provisioning"]
