"""The application tier: the API on ECS Fargate behind an ALB (SPEC section 11)."""
