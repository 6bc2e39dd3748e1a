"""A plaza client in its own process, for will tests: the parent kills it or lets it close.

Usage: python will_client.py PORT TOPIC PAYLOAD MODE
MODE ``wait`` connects, prints READY and waits to be killed; MODE ``close`` connects,
prints READY, closes cleanly, prints CLOSED and exits.
"""

from __future__ import annotations

import asyncio
import sys

from hereabouts.transports.mqtt import MqttSettings, MqttTransport


async def main(port: int, topic: str, payload: str, mode: str) -> int:
    transport = MqttTransport(node_name="will-child", settings=MqttSettings(port=port))
    transport.set_will(topic, payload.encode())
    async with transport:
        if not await transport.wait_connected(timeout=30):
            print(f"FAILED {transport.state.last_error}", flush=True)
            return 2
        print("READY", flush=True)
        if mode == "wait":
            await asyncio.Event().wait()
    print("CLOSED", flush=True)
    return 0


if __name__ == "__main__":
    port_arg, topic_arg, payload_arg, mode_arg = sys.argv[1:5]
    sys.exit(asyncio.run(main(int(port_arg), topic_arg, payload_arg, mode_arg)))
