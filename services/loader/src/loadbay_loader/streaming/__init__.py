"""Reading source objects, for every kind of load: bytes from S3 in bounded chunks, read
ahead, decompressed, and within the limits one file may cost (`limits`)."""
