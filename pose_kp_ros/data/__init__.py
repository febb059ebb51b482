"""Locating data files shipped inside installed packages (LM-O test set, background photos)."""
