-- The Neo Service Layer keeps its services apart in nine schemas of one database.
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS auth;
CREATE SCHEMA IF NOT EXISTS sgx;
CREATE SCHEMA IF NOT EXISTS keymanagement;
CREATE SCHEMA IF NOT EXISTS oracle;
CREATE SCHEMA IF NOT EXISTS voting;
CREATE SCHEMA IF NOT EXISTS crosschain;
CREATE SCHEMA IF NOT EXISTS monitoring;
CREATE SCHEMA IF NOT EXISTS eventsourcing;

CREATE OR REPLACE FUNCTION public.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION public.generate_secure_string(length integer DEFAULT 32) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT encode(gen_random_bytes(length), 'base64');
$$;

-- bcrypt with cost 12; the salt is generated, as a salt parameter would only weaken it.
CREATE OR REPLACE FUNCTION public.hash_with_salt(input_text text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT crypt(input_text, gen_salt('bf', 12));
$$;

CREATE OR REPLACE FUNCTION public.verify_hash(input_text text, hashed_value text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT crypt(input_text, hashed_value) = hashed_value;
$$;
