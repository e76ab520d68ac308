"""save: warc (C16), read back with the WARC ecosystem's own tools: warcio, FastWARC,
cdxj-indexer and pywb."""
