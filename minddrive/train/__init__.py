"""minddrive.train"""
