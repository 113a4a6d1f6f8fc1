# mindroom-platform.Dockerfile -- the mindroom-platform image: the instance lifecycle API, with
# helm and the instance chart it renders (MINDROOM_PLATFORM_INSTANCE_CHART's default path).
# Built by docker/build.sh after the shared stages (build.Dockerfile, runtime.Dockerfile),
# with docker/ as the context: it copies nothing from there.
ARG VERSION=0.1.0
FROM mindroom-build:${VERSION} AS build
RUN cmake --build /build --target mindroom-platform -j"$(nproc)"

# The instance chart as operators receive it: its library dependency built, packaged.
FROM alpine/helm:3.17.3 AS chart
COPY --from=build /src/charts /charts
RUN helm dependency build /charts/instance \
 && helm package /charts/instance --destination /out \
 && mv /out/mindroom-instance-*.tgz /out/mindroom-instance.tgz

FROM mindroom-runtime:${VERSION}
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libhiredis0.14 libjansson4 librdkafka1 libsqlite3-0 libssl3 libyaml-0-2 \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY --from=chart /usr/bin/helm /usr/local/bin/helm
COPY --from=chart /out/mindroom-instance.tgz /usr/share/mindroom/charts/mindroom-instance.tgz
COPY --from=build /build/services/platform/mindroom-platform /usr/local/bin/mindroom-platform
ENTRYPOINT ["mindroom-platform"]
