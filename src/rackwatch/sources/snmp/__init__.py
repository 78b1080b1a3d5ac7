"""PDUs over SNMP (docs/SNMP.md): vendor profiles as data files (`profiles.py`), an
asynchronous SNMP client on pysnmp (`client.py`), one PDU read through its profile
(`reader.py`) and the poller of `rackwatch run` (`poller.py`).

Nothing is imported here: `profiles` alone stays cheap (the CLI's help), pysnmp loads with
`client`."""
