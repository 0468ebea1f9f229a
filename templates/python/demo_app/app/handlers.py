from .util import GREETING, add

VERSION_TEXT = GREETING + " from v1"


def calc(a, b):
    return add(a, b)


def hello():
    return VERSION_TEXT
