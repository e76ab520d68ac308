"""Crawl mode: a task source plus admit() and discover() hooks; links, robots.txt, sitemaps."""
