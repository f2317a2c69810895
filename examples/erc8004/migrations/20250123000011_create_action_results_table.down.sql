DROP TABLE IF EXISTS action_results;
