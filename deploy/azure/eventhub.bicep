// Resource-group part of deploy/azure/main.bicep: the hub, its consumer group, the rule Azure
// Monitor sends with, and the daemon's identity with receive-only access to the hub.

param location string
param namespaceName string
param hubName string
param consumerGroupName string
param partitionCount int
param oidcIssuerUrl string
param serviceAccountSubject string

// Built-in role "Azure Event Hubs Data Receiver": receive only, on this hub only.
var dataReceiverRoleId = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'

resource ns 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    minimumTlsVersion: '1.2'
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: ns
  name: hubName
  properties: {
    partitionCount: partitionCount
    // Longer than a weekend outage: the daemon resumes from its SQLite checkpoints.
    messageRetentionInDays: 7
  }
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: consumerGroupName
}

// Azure Monitor streams with a namespace rule; it needs Manage, Send and Listen.
resource diagnosticsRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = {
  parent: ns
  name: 'azure-monitor-activity-log'
  properties: {
    rights: [
      'Manage'
      'Send'
      'Listen'
    ]
  }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-accessdrift'
  location: location
}

// Workload identity: tokens of the daemon's service account, issued by the cluster's OIDC
// issuer, are exchanged for this identity's. No secret exists anywhere.
resource federated 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: identity
  name: 'aks-accessdrift'
  properties: {
    issuer: oidcIssuerUrl
    subject: serviceAccountSubject
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, identity.id, dataReceiverRoleId)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataReceiverRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

output diagnosticsRuleId string = diagnosticsRule.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
output namespaceHost string = '${ns.name}.servicebus.windows.net'
