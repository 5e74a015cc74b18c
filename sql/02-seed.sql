-- Generated from roster.yaml by `make render`. Do not edit.
-- One row per roster server; idempotent, and an existing row keeps its points.
-- Stamped in the servers' default session time zone (DB_TIMEZONE).
SET time_zone = '+08:00';
USE project_db;

INSERT INTO users (user, points, datetime_stamp) VALUES ('c_user-azmeer', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('python_user-azmeer', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('c_user-akmal', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('python_user-akmal', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('c_user-hasif', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
INSERT INTO users (user, points, datetime_stamp) VALUES ('python_user-hasif', 0, NOW()) ON DUPLICATE KEY UPDATE user = user;
