# The counter demo, built into its own image: the host checkout is only read (no dist/ or
# node_modules written into it, so nothing root-owned is left behind).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src src
COPY scripts scripts
COPY test test
COPY bench bench
COPY sql sql
COPY migrations migrations
RUN npx tsc -p tsconfig.json
USER node
# Exec form: node itself receives SIGTERM from `docker stop` (compose also sets init: true).
CMD ["node", "dist/scripts/demo.js"]
