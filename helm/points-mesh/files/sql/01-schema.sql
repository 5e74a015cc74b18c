-- Copy of sql/01-schema.sql, made by `make render` for the Helm chart. Do not edit.
-- The one schema of the points system (MySQL 8 / MariaDB 10.11+).
-- Loaded before 02-seed.sql; safe to run again.
CREATE DATABASE IF NOT EXISTS project_db;
USE project_db;

CREATE TABLE IF NOT EXISTS users (
  user VARCHAR(50) PRIMARY KEY,
  points INT NOT NULL DEFAULT 0,
  datetime_stamp DATETIME NOT NULL
);
