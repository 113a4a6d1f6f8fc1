# runtime.Dockerfile -- the shared runtime base: Debian 12 slim, CA certificates, tzdata (schedules
# keep wall times in config.yaml's timezone), the unprivileged
# user 10001 the charts run as (runAsNonRoot needs a numeric USER), and its storage directory.
# Built by docker/build.sh before the service images:
#   docker build -f docker/runtime.Dockerfile -t mindroom-runtime:0.1.0 docker
FROM debian:12-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mindroom \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mindroom --shell /usr/sbin/nologin mindroom \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/mindroom

ENV MINDROOM_STORAGE_PATH=/var/lib/mindroom
WORKDIR /var/lib/mindroom
USER 10001:10001
