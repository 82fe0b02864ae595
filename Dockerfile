# Worker image for docker-compose.yml (real Apache Kafka). The embedded broker is not used here.
# The core is compiled with mypyc (setup.py) in a build stage that has gcc; the runtime
# image gets the built wheels only.
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
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'crm-triggers[rocksdb]' \
    && rm -rf /wheels
USER nobody
ENV CRM_DATA_DIR=/tmp/crm-triggers
EXPOSE 6066
ENTRYPOINT ["crm-triggers"]
CMD ["worker"]
