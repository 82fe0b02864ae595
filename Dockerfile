# Worker image for docker-compose.yml (real Apache Kafka). The embedded broker is not used here.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
RUN pip install --no-cache-dir '.[rocksdb]'
USER nobody
ENV CRM_DATA_DIR=/tmp/crm-triggers
EXPOSE 6066
ENTRYPOINT ["crm-triggers"]
CMD ["worker"]
