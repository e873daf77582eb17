"""Scoring, recordings (rosbag2 via rosbags), replay and reports."""
