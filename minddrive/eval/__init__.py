"""minddrive.eval"""
