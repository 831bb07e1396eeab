"""Postfix-native mode: mailcarrier as Postfix's smtp(8) and lmtp(8) under a real master(8).

A peer of queue/ (DESIGN.md): both hand `DeliveryRequest`s to delivery/ and turn the results
into their own records. attr.py is the qmgr/bounce wire format; the rest of the package (the
request, the queue file, reporting, the master(8) child) builds on it.
"""
