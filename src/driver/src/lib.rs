//! The driver: owns machine definitions and their running helpers.
