"""issue 11 fault suite"""
