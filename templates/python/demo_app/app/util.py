def add(a, b):
    return a + b


GREETING = "hello"
