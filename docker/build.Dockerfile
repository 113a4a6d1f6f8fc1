# build.Dockerfile -- the shared build stage: Debian 12 with the -dev packages and the source,
# configured RelWithDebInfo with -Werror. Each mindroom*.Dockerfile builds its one target in it.
# Built first by docker/build.sh, with the repository root as context:
#   docker build -f docker/build.Dockerfile -t mindroom-build:0.1.0 .
FROM debian:12-slim

# python3 only because configuring the tree looks for it (the tests use it); no test is built.
# dpkg-dev and zlib1g-dev for libcurl and libmicrohttpd, built below from Debian's sources.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config python3 dpkg-dev zlib1g-dev \
      libyaml-dev libjansson-dev libcmocka-dev \
      libhiredis-dev libsqlite3-dev libssl-dev librdkafka-dev libjwt-dev libolm-dev \
 && rm -rf /var/lib/apt/lists/*

# Static libcurl and libmicrohttpd, as `make deps` builds them (scripts/build-http-deps.sh):
# copied alone first, so a change to the source does not rebuild them.
COPY scripts/build-http-deps.sh /src/scripts/build-http-deps.sh
RUN /src/scripts/build-http-deps.sh /deps

COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMR_WERROR=ON -DMR_HTTP_DEPS_PREFIX=/deps
