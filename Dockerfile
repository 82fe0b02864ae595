# syntax=docker/dockerfile:1
# Worker image for docker-compose.yml (real Apache Kafka). The embedded broker is not used here.
# The core is compiled with mypyc (setup.py) in a build stage that has gcc; the runtime
# image installs the built wheels from a bind mount, so no layer keeps them.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY streams ./streams
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[rocksdb]'

FROM python:3.11-slim
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels 'crm-triggers[rocksdb]'
USER nobody
ENV CRM_DATA_DIR=/tmp/crm-triggers
EXPOSE 6066
ENTRYPOINT ["crm-triggers"]
CMD ["worker"]
