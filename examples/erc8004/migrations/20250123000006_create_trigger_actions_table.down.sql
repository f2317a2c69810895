DROP TABLE IF EXISTS trigger_actions;
