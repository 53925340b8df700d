"""The publisher workspace: pages and JSON endpoints for an organization's owners and publishers.

Every view here looks its objects up through access.policy.publishable_organizations, so a
non-member gets 404 for anything under /publish/.
"""
