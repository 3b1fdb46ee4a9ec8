"""Endoscopy video on the gateway: capture, polyp segmentation, findings, live view.

Raw video never leaves the gateway: only :class:`wire.messages.Finding`
geometry goes to the alarm path and the uplink.
"""
