"""The sans-I/O core: protocol logic as plain objects.

Modules here take events and the time in and return decisions (effects) as values. They never
import asyncio, socket, time or random: the clock and any randomness are passed in, so the
asyncio runtime, the tests and the simulator all drive exactly the same code.
"""
