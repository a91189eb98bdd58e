# syntax=docker/dockerfile:1
# The controller image: db-backup-controller on distroless Node.js (no shell, no package manager), uid/gid 65532.
# Built from the repository root:  docker build -f images/controller.Dockerfile .   (make images builds them all)
# Writes nothing at run time, so it runs with readOnlyRootFilesystem; no HEALTHCHECK: the chart's probes call
# /healthz and /readyz.
ARG NODE_MAJOR=20

# JavaScript and the production node_modules are the same on every platform (no package has install scripts or
# native code; test/unit/images.test.ts checks the lock file), so these stages run on the build machine's platform.
FROM --platform=$BUILDPLATFORM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY api api
COPY controller controller
RUN npm run build

FROM --platform=$BUILDPLATFORM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/db-backup-controller/db-backup-controller
LABEL org.opencontainers.image.title="db-backup-controller" \
      org.opencontainers.image.description="Deploys and maintains one backup runner per DatabaseBackup" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
# package.json says "type": "module": without it Node would read dist/ as CommonJS.
COPY --from=build /src/package.json package.json
COPY --from=build /src/dist/api dist/api
COPY --from=build /src/dist/controller dist/controller
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/controller/bin.js"]
