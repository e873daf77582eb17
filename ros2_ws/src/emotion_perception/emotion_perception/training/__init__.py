"""Training and dataset evaluation: DFEW/FERV39k readers, clip sampling, loops, CLIs.

Nothing here is needed at inference time; the robot only loads the checkpoints written here.
"""
