-- Seed rows: two per roster member, idempotent (an existing row keeps its points).
-- Rendered from the roster by `make render` (sql/02-seed.sql) and by the Helm chart (its
-- database init ConfigMap, from .Values.members). Do not edit.
-- Stamped in the servers' session time zone (DB_TIMEZONE).
SET time_zone = '+08:00';
USE project_db;

INSERT INTO users (user, points, datetime_stamp) VALUES ('c_user-azmeer', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('python_user-azmeer', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('c_user-akmal', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('python_user-akmal', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('c_user-hasif', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('python_user-hasif', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
