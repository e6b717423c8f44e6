# flowlens as a scheduled container task (ECS scheduled task, Kubernetes CronJob).
# Build:  docker build -t flowlens .
# Run:    docker run --rm -e FLOWLENS_SOURCE=s3://logs/AWSLogs/ -e FLOWLENS_STATE=s3://ops/flowlens/state \
#                    -e FLOWLENS_FINDINGS=s3://ops/flowlens/findings flowlens

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The manifest and lock first: the dependency stack builds once per lock file change.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY benches benches
COPY queries queries
COPY src src
RUN cargo build --release --locked --bin flowlens \
 && strip target/release/flowlens

FROM debian:bookworm-slim
# CA certificates for HTTPS to S3; nothing else is needed at run time.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin flowlens
COPY --from=build /src/target/release/flowlens /usr/local/bin/flowlens
USER 10001
ENV FLOWLENS_LOG_FORMAT=json
ENTRYPOINT ["flowlens", "run"]
