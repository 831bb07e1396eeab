"""Postfix-native mode: mailcarrier as Postfix's smtp(8) and lmtp(8) under a real master(8).

A peer of queue/ (DESIGN.md): both hand `DeliveryRequest`s to delivery/ and turn the results
into their own records. attr.py is the qmgr/bounce wire format; request.py (with msgstats.py)
the delivery request and reply.py the agent's replies built on it; queuefile.py reads and
marks the queue file; reporting and the master(8) child build on these.
"""
