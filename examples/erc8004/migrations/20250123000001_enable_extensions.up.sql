-- pgcrypto provides gen_random_uuid() on servers older than 13 and digest() for file hashes.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
