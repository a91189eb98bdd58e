# syntax=docker/dockerfile:1
# The PostgreSQL runner image: backup-runner with the PostgreSQL tools of one major version from the PGDG apt
# repository (pg_dump, pg_restore, psql, pg_basebackup, pg_receivewal) and zstd, uid/gid 65532. The server
# package is installed for restores only (restore --data-dir --start recovers a data directory with it, and
# pg_verifybackup checks WAL with its pg_waldump); no cluster is ever created and the daemon never starts one.
# Built from the repository root, one image per major version (images/matrix.json):
#   docker build -f images/runner-postgresql.Dockerfile --build-arg PG_MAJOR=16 .
# Writes nothing outside /tmp (HOME is /tmp; the pod mounts an emptyDir there), so it runs with
# readOnlyRootFilesystem; no HEALTHCHECK: the pod's probes call /healthz and /readyz on port 9090.
ARG NODE_MAJOR=20
ARG PG_MAJOR=16

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

# The PGDG signing key, from Debian's own (signed) postgresql-common package rather than fetched from a web server.
FROM debian:bookworm-slim AS pgdg-key
WORKDIR /tmp/pgdg
RUN apt-get update \
 && apt-get download postgresql-common \
 && dpkg-deb --extract postgresql-common_*.deb /pgdg \
 && rm -rf /var/lib/apt/lists/*

# Everything that needs root: packages, the uid 65532 account, the backup-runner command.
FROM node:${NODE_MAJOR}-bookworm-slim AS tools
ARG PG_MAJOR
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=pgdg-key /pgdg/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc /usr/share/keyrings/apt.postgresql.org.asc
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    echo "deb [signed-by=/usr/share/keyrings/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends -t bookworm-pgdg postgresql-common; \
    sed -ri 's/^#?\s*(create_main_cluster)\s*=.*$/\1 = false/' /etc/postgresql-common/createcluster.conf; \
    grep -qx 'create_main_cluster = false' /etc/postgresql-common/createcluster.conf; \
    apt-get install -y --no-install-recommends -t bookworm-pgdg "postgresql-client-${PG_MAJOR}" "postgresql-${PG_MAJOR}" zstd; \
    rm -rf /var/lib/apt/lists/*; \
    test ! -e "/etc/postgresql/${PG_MAJOR}/main"; \
    for tool in pg_dump pg_restore psql postgres pg_waldump; do \
      "/usr/lib/postgresql/${PG_MAJOR}/bin/${tool}" --version | grep -E "^${tool} \(PostgreSQL\) ${PG_MAJOR}\."; \
    done; \
    zstd --version; \
    groupadd --gid 65532 nonroot; \
    useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin nonroot; \
    ln -s /app/dist/runner/cli/bin.js /usr/local/bin/backup-runner; \
    ln -s /app/dist/tools/main.js /usr/local/bin/db-backup-tool

FROM tools
ARG PG_MAJOR
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/db-backup-controller/db-backup-controller
LABEL org.opencontainers.image.title="backup-runner-postgresql" \
      org.opencontainers.image.description="db-backup-controller's backup runner with the PostgreSQL ${PG_MAJOR} client tools" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      io.dbbackup.runner.engine="postgresql" \
      io.dbbackup.runner.engine-version="${PG_MAJOR}"
# The tools of this major version first on PATH: Debian's /usr/bin/pg_dump is a Perl wrapper that picks a version.
ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH}" \
    HOME=/tmp \
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
