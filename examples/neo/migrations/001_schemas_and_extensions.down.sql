DROP FUNCTION IF EXISTS public.verify_hash(text, text);
DROP FUNCTION IF EXISTS public.hash_with_salt(text);
DROP FUNCTION IF EXISTS public.generate_secure_string(integer);
DROP FUNCTION IF EXISTS public.update_updated_at_column();
DROP SCHEMA IF EXISTS eventsourcing, monitoring, crosschain, voting, oracle, keymanagement, sgx, auth, core;
DROP EXTENSION IF EXISTS pgcrypto;
DROP EXTENSION IF EXISTS "uuid-ossp";
