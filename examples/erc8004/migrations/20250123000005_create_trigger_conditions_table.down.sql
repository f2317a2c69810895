DROP TABLE IF EXISTS trigger_conditions;
