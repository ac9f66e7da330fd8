-- Argo CD health of a Meridian Tier (policy.meridian.io), read from its status conditions.
-- Runs without the string and math libraries (argocd-cm customizations have no useOpenLibs).
local hs = { status = "Progressing", message = "Waiting for Meridian to report the Tier's status" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for Meridian to observe generation " .. obj.metadata.generation
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    return { status = "Degraded", message = c.message }
  end
  if c.type == "Ready" then
    if c.status == "True" then
      return { status = "Healthy", message = c.message }
    end
    return { status = "Progressing", message = c.message }
  end
end
return hs
