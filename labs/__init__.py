"""The labs, installed as the package data minivm.labs (see labs/README.md).

Each lab is a folder (its name has a hyphen, so it is data, not a module):
`minivm grade NAME` finds it here, or in labs/ of a source tree.
"""
