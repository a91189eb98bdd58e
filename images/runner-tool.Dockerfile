# syntax=docker/dockerfile:1
# A runner image for an engine shipped as a tool (tools/<TOOL>/, docs/engines.md): backup-runner, db-backup-tool
# and the Debian packages that tool names (TOOL_PACKAGES, from its definition.ts; images/matrix.json passes both,
# and test/unit/images.test.ts checks they agree), plus zstd, uid/gid 65532. The chart installs a
# DatabaseBackupEngine per tool that runs in this image.
# Built from the repository root, one image per tool:
#   docker build -f images/runner-tool.Dockerfile --build-arg TOOL=redis --build-arg TOOL_PACKAGES="redis-server redis-tools" .
# Writes nothing outside /tmp (HOME is /tmp), so it runs with readOnlyRootFilesystem; no HEALTHCHECK.
ARG NODE_MAJOR=20

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
ARG TOOL
# An unknown tool name fails the build here rather than the first backup.
RUN npm run build && chmod 0755 dist/runner/cli/bin.js dist/tools/main.js \
 && node -e 'import("./dist/tools/index.js").then((m) => { if (!Object.hasOwn(m.TOOLS, process.argv[1])) { console.error(`no tool "${process.argv[1]}" in tools/index.ts`); process.exit(1); } })' "${TOOL:?--build-arg TOOL=<name> is required}"

FROM --platform=$BUILDPLATFORM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Everything that needs root: packages, the uid 65532 account, the backup-runner command.
FROM node:${NODE_MAJOR}-bookworm-slim AS tools
ARG TOOL_PACKAGES
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# TOOL_PACKAGES is a list of Debian package names, split into words on purpose.
RUN set -eux; \
    : "${TOOL_PACKAGES:?--build-arg TOOL_PACKAGES=<Debian packages> is required}"; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates zstd ${TOOL_PACKAGES}; \
    rm -rf /var/lib/apt/lists/*; \
    dpkg-query --show ${TOOL_PACKAGES}; \
    zstd --version; \
    groupadd --gid 65532 nonroot; \
    useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin nonroot; \
    ln -s /app/dist/runner/cli/bin.js /usr/local/bin/backup-runner; \
    ln -s /app/dist/tools/main.js /usr/local/bin/db-backup-tool

FROM tools
ARG TOOL
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/db-backup-controller/db-backup-controller
LABEL org.opencontainers.image.title="backup-runner-${TOOL}" \
      org.opencontainers.image.description="db-backup-controller's backup runner with the ${TOOL} engine tool" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      io.dbbackup.runner.engine="command" \
      io.dbbackup.runner.tool="${TOOL}"
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
