"""The domain: the ciphertext format, key states, the service clock and AWS's errors."""
