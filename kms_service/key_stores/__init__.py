"""Custom key stores over PKCS#11 tokens, presented as AWS CloudHSM key stores
(docs/custom-key-stores.md): the cluster configuration, the connection check, and each
process's sessions on the stores' tokens."""
