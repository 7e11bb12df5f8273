"""minddrive.models"""
