# syntax=docker/dockerfile:1
# The MySQL/MariaDB runner image: backup-runner with Debian bookworm's MariaDB 10.11 client (mariadb-dump,
# mariadb) and zstd, uid/gid 65532. Backs up MariaDB up to 10.11 and MySQL up to 5.7 (docs/engines.md).
# Built from the repository root:  docker build -f images/runner-mysql.Dockerfile .
# Writes nothing outside /tmp (HOME is /tmp), so it runs with readOnlyRootFilesystem; no HEALTHCHECK.
ARG NODE_MAJOR=20
ARG MARIADB_VERSION=10.11

# JavaScript and the production node_modules are the same on every platform (no package has install scripts or
# native code; test/unit/images.test.ts checks the lock file), so these stages run on the build machine's platform.
FROM --platform=$BUILDPLATFORM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY api api
COPY runner runner
# The engine tools shipped with the runner (db-backup-tool, docs/engines.md): they meet the runner only through the tool contract.
COPY tools tools
RUN npm run build && chmod 0755 dist/runner/cli/bin.js dist/tools/main.js

FROM --platform=$BUILDPLATFORM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Everything that needs root: packages, the uid 65532 account, the backup-runner command.
FROM node:${NODE_MAJOR}-bookworm-slim AS tools
ARG MARIADB_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates mariadb-client zstd; \
    rm -rf /var/lib/apt/lists/*; \
    installed="$(dpkg-query --show --showformat='${Version}' mariadb-client)"; \
    case "$installed" in \
      "1:${MARIADB_VERSION}."*) ;; \
      *) echo "mariadb-client is ${installed}, not ${MARIADB_VERSION}" >&2; exit 1 ;; \
    esac; \
    mariadb-dump --version; \
    mariadb --version; \
    zstd --version; \
    groupadd --gid 65532 nonroot; \
    useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin nonroot; \
    ln -s /app/dist/runner/cli/bin.js /usr/local/bin/backup-runner; \
    ln -s /app/dist/tools/main.js /usr/local/bin/db-backup-tool

FROM tools
ARG MARIADB_VERSION
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/db-backup-controller/db-backup-controller
LABEL org.opencontainers.image.title="backup-runner-mysql" \
      org.opencontainers.image.description="db-backup-controller's backup runner with the MariaDB ${MARIADB_VERSION} client" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      io.dbbackup.runner.engine="mysql" \
      io.dbbackup.runner.engine-version="${MARIADB_VERSION}"
ENV HOME=/tmp \
    NODE_ENV=production \
    RUNNER_VERSION="${VERSION}"
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
# package.json says "type": "module": without it Node would read dist/ as CommonJS.
COPY --from=build /src/package.json package.json
COPY --from=build /src/dist/api dist/api
COPY --from=build /src/dist/runner dist/runner
COPY --from=build /src/dist/tools dist/tools
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/node", "/app/dist/runner/cli/bin.js"]
CMD ["serve"]
