# Multi-stage build of the sluice broker.
#   docker build -t sluice .
#   docker run -p 9092:9092 -v sluice-data:/var/lib/sluice sluice
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/sluice sluice \
    && mkdir -p /var/lib/sluice && chown sluice /var/lib/sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY config/sluice.toml /etc/sluice/sluice.toml
USER sluice
VOLUME /var/lib/sluice
EXPOSE 9092
ENV SLUICE_LISTEN=0.0.0.0:9092 SLUICE_DATA_DIR=/var/lib/sluice
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve", "--config", "/etc/sluice/sluice.toml"]
