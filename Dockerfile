# The clv binary in a small runtime image, run as a non-root user.
#   docker build -t clv .        (docker-compose.yml builds it for the stack)
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin clv \
 && cp target/release/clv /usr/local/bin/clv

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data clv \
 && mkdir -p /data /input \
 && chown clv:clv /data /input
COPY --from=build /usr/local/bin/clv /usr/local/bin/clv
USER clv
WORKDIR /data
ENTRYPOINT ["clv"]
CMD ["--help"]
