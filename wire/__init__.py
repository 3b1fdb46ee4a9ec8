"""The edge-cloud contract: topics, message schemas, encoding, versions, model manifests and signing.

Imported by both daemons (edge/ and cloud/) and by the layers between; it imports nothing of ours.
"""
