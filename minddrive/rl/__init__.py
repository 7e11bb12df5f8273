"""minddrive.rl"""
