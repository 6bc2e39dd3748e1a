"""The sans-I/O core: protocol logic as plain objects.

Modules here take events and the time in and return decisions (effects) as values. They do
no I/O and read neither the clock nor a random source (no asyncio, socket, time or random
modules): both are passed in, so the asyncio runtime, the tests and the simulator all drive
exactly the same code.
"""
