# mindroom-upstream-auth.Dockerfile -- the mindroom-upstream-auth image:
# the HTTP identity boundary of the dashboard/API and forward auth.
# Built by docker/build.sh after the shared stages (build.Dockerfile, runtime.Dockerfile),
# with docker/ as the context: it copies nothing from there.
ARG VERSION=0.1.0
FROM mindroom-build:${VERSION} AS build
RUN cmake --build /build --target mindroom-upstream-auth -j"$(nproc)"

FROM mindroom-runtime:${VERSION}
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libhiredis0.14 libjansson4 librdkafka1 libsqlite3-0 libssl3 libyaml-0-2 \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY --from=build /build/services/upstream-auth/mindroom-upstream-auth /usr/local/bin/mindroom-upstream-auth
ENTRYPOINT ["mindroom-upstream-auth"]
