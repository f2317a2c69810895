DROP TABLE IF EXISTS trigger_state;
